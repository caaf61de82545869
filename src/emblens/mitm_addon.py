"""The file to give mitmproxy: `mitmdump -s "$(emblens addon-path)"` (see emblens.live)."""

from emblens.live import EmblensAddon

addons = [EmblensAddon()]

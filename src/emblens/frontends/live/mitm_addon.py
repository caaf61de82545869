"""The file to give mitmproxy: `mitmdump -s "$(emblens addon-path)"` (see emblens.frontends.live.addon)."""

from emblens.frontends.live.addon import EmblensAddon

addons = [EmblensAddon()]

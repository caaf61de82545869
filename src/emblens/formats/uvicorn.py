"""uvicorn's lines, which vLLM and SGLang both print (FORMATS.md §1, §2): access lines and level
lines. Every format that reads a server's lines uses these patterns."""

ACCESS = r'^INFO: +(?P<client>\S+) - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})(?: (?P<reason>.*))?$'
UVICORN = r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL): +(?P<msg>.*)$"
# how almost every line of a busy server's log ends: an access line of a request that worked
OK_LINE = ' HTTP/1.1" 200 OK'

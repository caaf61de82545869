"""emblens as a mitmproxy addon: the addon (`addon`), the process that runs its rules
(`rules_process`) and the file mitmdump loads (`mitm_addon`)."""

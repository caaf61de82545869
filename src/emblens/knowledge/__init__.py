"""What the software in the path expects, as data loaded from rule folders: embedding model
families' prefixes and sizes (`modeldata`), read with a YAML loader safe for strangers' files (`yamlsafe`)."""

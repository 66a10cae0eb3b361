"""The base's storage and machinery: the SQLite execution log, the on-disk
layout, plan import, the demo base. Nothing here imports Textual."""

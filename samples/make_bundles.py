"""Zip each sample folder into `<folder>.zip` (sorted members, fixed timestamps: reproducible).

    python samples/make_bundles.py
"""

import zipfile
from pathlib import Path

HERE = Path(__file__).parent

for folder in sorted(p for p in HERE.iterdir() if p.is_dir() and p.name != "tools"):
    target = HERE / f"{folder.name}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                info = zipfile.ZipInfo(f"{folder.name}/{f.relative_to(folder)}", date_time=(2026, 11, 20, 9, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, f.read_bytes())
    print(target.name)

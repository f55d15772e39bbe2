"""Rebuild lra/imdb/train.tsv.gz as ../shared/data/README.md documents it (the file is absent from this
project's copy of shared/, which has only test.tsv.gz): all 25,000 aclImdb train reviews from a git mirror of
dax44/AMLM at 05fb2144 (its train/ + val/ folders together), neg ids 0..12499 then pos, header label<TAB>text,
1 = pos, tabs/CR/LF replaced by spaces. The result has the documented 33,207,834 uncompressed bytes.

    python results/lra/rebuild_imdb_train.py MIRROR.git OUT/train.tsv.gz   # then put test.tsv.gz beside it
"""

import gzip
import re
import subprocess
import sys

repo = sys.argv[1]
names = subprocess.run(["git", "--git-dir", repo, "ls-tree", "-r", "--name-only", "HEAD", "data/aclImdb"],
                       capture_output=True, text=True, check=True).stdout.split("\n")
files = {}
for path in names:
    m = re.match(r"data/aclImdb/(train|val)/(pos|neg)/(\d+)_(\d+)\.txt$", path)
    if m:
        files[(m[2], int(m[3]))] = path
assert len(files) == 25000, len(files)
rows = ["label\ttext\n"]
batch = subprocess.run(["git", "--git-dir", repo, "cat-file", "--batch"], capture_output=True, check=True,
                       input="".join(f"HEAD:{files[key]}\n" for key in sorted(files, key=lambda k: (k[0] != "neg", k[1]))).encode())
out, pos = batch.stdout, 0
for key in sorted(files, key=lambda k: (k[0] != "neg", k[1])):
    header_end = out.index(b"\n", pos)
    size = int(out[pos:header_end].split()[2])
    text = out[header_end + 1: header_end + 1 + size].decode("utf-8")
    pos = header_end + 1 + size + 1
    clean = re.sub(r"[\t\r\n]", " ", text)
    rows.append(f"{int(key[0] == 'pos')}\t{clean}\n")
data = "".join(rows).encode("utf-8")
print(len(rows) - 1, "rows,", len(data), "bytes uncompressed")
with gzip.open(sys.argv[2], "wb") as f:
    f.write(data)

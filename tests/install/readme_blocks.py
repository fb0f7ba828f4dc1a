#!/usr/bin/python3
"""Writes the command blocks (4-space indented) of one README.md section to OUTDIR/1, 2, ...

    readme_blocks.py README.md "## Section title prefix" OUTDIR

CI runs them as written (tests/install/systemd_live_test.sh), so README and CI cannot
drift. A block is a run of indented lines after a blank line; blank lines inside a block
(a heredoc's) stay in it.
"""
import os
import sys


def blocks(readme, title):
    lines = open(readme, encoding="utf-8").read().split("\n")
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith(title))
    except StopIteration:
        sys.exit("%s: no section starting %r" % (readme, title))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    out, cur, prev_blank = [], None, True
    for l in lines[start + 1:end]:
        if l.startswith("    ") and (cur is not None or prev_blank):
            if cur is None:
                cur = []
                out.append(cur)
            cur.append(l[4:])
        elif not l.strip() and cur is not None:
            cur.append("")
        else:
            cur = None
        prev_blank = not l.strip()
    return ["\n".join(b).strip() + "\n" for b in out]


def main():
    readme, title, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    for n, text in enumerate(blocks(readme, title), 1):
        with open(os.path.join(outdir, str(n)), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

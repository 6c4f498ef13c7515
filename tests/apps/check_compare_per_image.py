"""scripts/compare_per_image.py on a constructed per_image.csv whose answer is known: a row that
is the base plus 0.1 on three images of four and minus 0.2 on the fourth has mean difference
+0.025, median +0.1, three of four above, and lists the fourth first; lower Chamfer counts as
above; rows of another category are compared with that category's base only (none: no
comparison); a quoted row
name with a comma is one row; a missing column and an unknown base are errors naming them."""
import os, subprocess, sys, tempfile

script, = sys.argv[1:]


def run(*args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


def check(cond, what, r):
    if not cond:
        sys.exit("%s\nstdout:\n%s\nstderr:\n%s" % (what, r.stdout, r.stderr))


header = "model,category,id,iou,precision,recall,part_iou,chamfer,fscore_5,fscore_10,part_agreement_3d\n"
base = {"horse/%d" % i: 0.5 + 0.05 * i for i in range(4)}
lines = [header]
for i, v in base.items():
    lines.append("pseudo-labels,horse,%s,%.4f,1,1,0.5,0.05,,,\n" % (i, v))
for n, (i, v) in enumerate(base.items()):
    d = -0.2 if n == 2 else 0.1
    lines.append('"net, refined 5",horse,%s,%.4f,1,1,0.5,%.4f,0.5,0.5,0.5\n' % (i, v + d, 0.04 - d / 10))
lines.append("pseudo-labels,zebra,zebra/0,0.9,1,1,0.5,,,,\n")
lines.append('"net, refined 5",zebra,zebra/0,0.8,1,1,0.5,0.03,0.5,0.5,0.5\n')

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "per_image.csv")
    with open(path, "w") as f:
        f.writelines(lines)
    r = run(path, "--worst", "1")
    check(r.returncode == 0, "the comparison failed", r)
    check("| net, refined 5 | horse | 4 | 0.6000 | 0.6250 | +0.0250 | +0.1000 | 3 of 4 |" in r.stdout,
          "unexpected horse row", r)
    check("| net, refined 5 | zebra | 1 | 0.8000 | 0.8000 | -0.1000 | -0.1000 | 0 of 1 |" in r.stdout,
          "unexpected zebra row", r)
    check("horse/2  0.4000  0.6000" in r.stdout, "the image that loses most is not listed first", r)
    # Chamfer: lower is better (0.03 on three images against 0.05, 0.06 on one); the zebra base
    # has none, so that row has no comparison.
    r = run(path, "--metric", "chamfer")
    check(r.returncode == 0 and "| net, refined 5 | horse | 4 | 0.0375 | 0.0300 | -0.0125 | -0.0200 | 3 of 4 |"
          in r.stdout and "| net, refined 5 | zebra | 1 | 0.0300 | 0.0300 | - | - | - |" in r.stdout,
          "unexpected Chamfer table", r)
    r = run(path, "--base", "nobody")
    check(r.returncode != 0 and "no row named 'nobody'" in r.stderr, "an unknown base is not named", r)
    r = run(path, "--metric", "nope")
    check(r.returncode != 0 and "no column 'nope'" in r.stderr, "a missing column is not named", r)
    r = run(os.path.join(tmp, "absent.csv"))
    check(r.returncode != 0 and "absent.csv: cannot be read" in r.stderr, "a missing file is not named", r)
print("compare_per_image.py: ok")

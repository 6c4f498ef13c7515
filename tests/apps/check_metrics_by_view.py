"""scripts/metrics_by_view.py on a constructed report whose answer is known: four images at
azimuths 0, 180 (end-on), 90 and 300 (side-on); a model's Chamfer 0.05 and 0.07 end-on and
0.02 and 0.04 side-on averages 0.06 end-on, 0.03 side-on, 0.045 over all; the pseudo-labels'
rows, in both reports given, count once and have no Chamfer; a threshold outside (0, 1), a
missing column, a missing report and a missing params file are errors naming them."""
import json, os, subprocess, sys, tempfile

script, = sys.argv[1:]


def run(*args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


def check(cond, what, r):
    if not cond:
        sys.exit("%s\nstdout:\n%s\nstderr:\n%s" % (what, r.stdout, r.stderr))


header = "model,category,id,iou,precision,recall,part_iou,chamfer,fscore_5,fscore_10,part_agreement_3d\n"
azimuths = {0: 0.0, 1: 180.0, 2: 90.0, 3: 300.0}
chamfer = {0: 0.05, 1: 0.07, 2: 0.02, 3: 0.04}
with tempfile.TemporaryDirectory() as tmp:
    gt = os.path.join(tmp, "data", "gt", "horse")
    os.makedirs(gt)
    for i, az in azimuths.items():
        with open(os.path.join(gt, "params_%d.json" % i), "w") as f:
            json.dump({"camera": {"azimuth_deg": az, "elevation_deg": 10.0}}, f)
    reports = []
    for name in ("a", "b"):
        folder = os.path.join(tmp, name)
        os.makedirs(folder)
        with open(os.path.join(folder, "per_image.csv"), "w") as f:
            f.write(header)
            for i in azimuths:
                f.write("pseudo-labels,horse,horse/%d,0.8,1,1,0.5,,,,\n" % i)
                f.write('"net %s, seed 1",horse,horse/%d,0.7,1,1,0.4,%.3f,0.6,0.9,0.5\n' % (name, i, chamfer[i]))
        reports += ["--eval", folder]
    data = os.path.join(tmp, "data")
    r = run(*reports, "--data", data, "--scores", "iou,chamfer")
    check(r.returncode == 0, "the table failed", r)
    for row in ("| net a, seed 1 | end-on | 2 | 0.7000 | 0.0600 |", "| net a, seed 1 | side-on | 2 | 0.7000 | 0.0300 |",
                "| net a, seed 1 | all | 4 | 0.7000 | 0.0450 |", "| net b, seed 1 | all | 4 | 0.7000 | 0.0450 |",
                "| pseudo-labels | all | 4 | 0.8000 | - |", "| pseudo-labels | end-on | 2 | 0.8000 | - |"):
        check(row in r.stdout, "missing row " + row, r)
    # 300 degrees: |cos| = 0.5, end-on below a threshold of 0.4.
    r = run(*reports, "--data", data, "--scores", "chamfer", "--threshold", "0.4")
    check(r.returncode == 0 and "| net a, seed 1 | end-on | 3 | 0.0533 |" in r.stdout, "the threshold is not used", r)
    r = run(*reports, "--data", data, "--scores", "nope")
    check(r.returncode != 0 and "no column nope" in r.stderr, "a missing column is not named", r)
    r = run(*reports, "--data", data, "--threshold", "1.5")
    check(r.returncode != 0 and "--threshold 1.5" in r.stderr, "a bad threshold is not named", r)
    r = run("--eval", os.path.join(tmp, "absent"), "--data", data)
    check(r.returncode != 0 and "absent: no per_image.csv" in r.stderr, "a missing report is not named", r)
    os.remove(os.path.join(gt, "params_3.json"))
    r = run(*reports, "--data", data)
    check(r.returncode != 0 and "params_3.json" in r.stderr, "a missing params file is not named", r)
print("metrics_by_view.py: ok")

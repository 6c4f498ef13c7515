"""scripts/viewpoint_check.py on constructed predictions: a camera turned about the vertical
axis by the true azimuth plus a constant agrees fully in one sense of turning and not in the
other; a camera that never turns has no spread and no agreement; a missing true camera is an
error naming the file."""
import json, math, os, random, subprocess, sys, tempfile

script, = sys.argv[1:]
random.seed(3)


def run(pred, data):
    return subprocess.run([sys.executable, script, "--predictions", pred, "--data", data],
                          capture_output=True, text=True)


with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "gt", "horse"))
    turned, fixed = os.path.join(tmp, "turned"), os.path.join(tmp, "fixed")
    os.makedirs(turned)
    os.makedirs(fixed)
    for i in range(64):
        az = random.uniform(0, 360)
        with open(os.path.join(data, "gt", "horse", f"params_{i}.json"), "w") as f:
            json.dump({"camera": {"azimuth_deg": az}}, f)
        t = math.radians(az) + 0.5  # a turn about y by the azimuth plus a constant
        for folder, q in ((turned, [math.cos(t / 2), 0, math.sin(t / 2), 0]), (fixed, [0.97, 0.13, 0.07, 0.16])):
            with open(os.path.join(folder, f"input_{i}.json"), "w") as f:
                json.dump({"camera": {"rotation_wxyz": q}}, f)
    out = run(turned, data)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    senses = {l.split()[1].rstrip(":"): float(l.split("length of (yaw - true azimuth)")[1].split()[0])
              for l in lines[1:]}
    # A turn about y by t sends the object's x axis to yaw -t: full agreement in sense -1.
    assert senses["-1"] > 0.999, out.stdout
    assert senses["+1"] < 0.5, out.stdout
    assert float(lines[0].split("deviation")[1].split()[0]) > 60, out.stdout
    out = run(fixed, data)
    assert out.returncode == 0, out.stderr
    assert " 0.0 deg" in out.stdout.splitlines()[0], out.stdout
    os.remove(os.path.join(data, "gt", "horse", "params_5.json"))
    out = run(fixed, data)
    assert out.returncode != 0 and "params_5.json" in out.stderr, (out.stdout, out.stderr)
print("ok")

"""Interrupting a study run for the resume tests: a command that kills a training mid-run."""

# Runs the real child, SIGKILLs it once its first checkpoint is complete, then itself.
KILLER = r'''
import os, signal, subprocess, sys, time
spec_path = sys.argv[1]
work_dir = os.path.dirname(spec_path)
child = subprocess.Popen([sys.executable, '-m', 'mmdet_ghm.study.child', spec_path])
while child.poll() is None:
    if os.path.exists(os.path.join(work_dir, 'last_checkpoint')):
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
sys.exit(child.returncode)
'''

#: What must not change when a run is interrupted and resumed.
METRIC_KEYS = ('bbox_mAP', 'final', 'val_curve', 'ghm_stats', 'iters', 'epochs')

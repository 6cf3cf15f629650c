"""Process faults: SIGSTOP/SIGCONT, SIGKILL and restart act on the process and are recorded, in
order, with their time; stop() ends even a stopped process."""
import sys
import time

from .procs import FaultLog, Proc, wait_until


def test_process_faults_are_recorded_in_order(tmp_path):
    log = FaultLog()
    p = Proc("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log)
    p.start()
    try:
        p.pause()
        wait_until(lambda: open(f"/proc/{p.pid}/stat").read().split()[2] == "T", 10,
                   "the paused process to stop")
        p.resume()
        p.kill9()
        assert p.popen.returncode == -9
        p.restart()
        assert p.alive()
        p.pause()
    finally:
        assert p.stop(grace=5) is not None       # a stopped process still ends
    kinds = [f.kind for f in log.faults]
    assert kinds == ["pause", "resume", "kill9", "restart", "pause"]
    times = [f.t for f in log.faults]
    assert times == sorted(times) and times[-1] <= time.time()
    assert log.counts() == {"pause": 2, "resume": 1, "kill9": 1, "restart": 1}

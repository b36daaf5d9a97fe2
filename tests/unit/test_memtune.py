import subprocess
import sys
import textwrap

import pytest

from synth.memtune import keep_freed_memory

# A worker-like thread that allocates, touches and frees 20 MiB in 8 buffers, 100 times; prints its page faults.
CHURN = textwrap.dedent("""
    import resource, sys, threading
    import numpy as np
    from synth.memtune import keep_freed_memory
    if sys.argv[1] == "tuned":
        assert keep_freed_memory()
    def churn():  # like a training step: a few tensors of 1-4 MiB live at once, then all freed
        for _ in range(100):
            held = [np.ones(k << 17) for k in (1, 2, 3, 4, 2, 1, 4, 3)]
            del held
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = threading.Thread(target=churn); t.start(); t.join()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_stops_page_faults_of_a_thread_that_reallocates():
    assert keep_freed_memory() is True
    default, tuned = faults("default"), faults("tuned")
    # default glibc hands the freed 20 MiB back to the kernel each round and faults it in again (about
    # 380,000 faults here); tuned, the heap keeps it (about 4,000)
    assert default > 100_000
    assert tuned < default / 10

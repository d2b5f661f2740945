"""Scenario runs as LAVA jobs: the engine kernel CI labs dispatch QEMU and board jobs with.

job.py   a scenario -> a LAVA job definition (ours: tuxlava's qemu job boots a root file system
         and logs in, our guest runs its job from the initramfs and ends by itself) and the qemu
         device dictionary a lab would render for it (tuxlava's device-type template, fed the
         job's context as lava-server feeds it)
logs.py  lava-run's log (one YAML record per line) -> the guest's console and the job's outcome
run.py   `--runner lava-run`: the job executed by this machine's lava-dispatcher, as a lab's
         worker runs it, judged by the same verdict code as a local run
server.py `--runner lava`: jobs submitted to a LAVA server, one or a batch (the bench matrix),
         polled in one loop, their logs pulled back and judged the same way
"""

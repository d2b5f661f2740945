"""The guest: its initramfs, QEMU, the scenarios, the console protocol and the verdict."""

"""Process figures both the session daemon (its whole tree) and the browser pool (one Chromium
each) read with psutil."""

from __future__ import annotations

import os
import signal

import psutil


def pss(procs: list[psutil.Process]) -> int:
    """Proportional set size of ``procs`` in bytes: a page several of them share counts once."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.AccessDenied:  # not ours to read (another user): its RSS, an upper bound
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        except (psutil.Error, AttributeError):  # gone meanwhile; AttributeError: no PSS on this OS
            pass
    return total


def browser_process(user_data_dir: str | os.PathLike) -> psutil.Process | None:
    """The Chromium browser process (not one of its children) running on ``user_data_dir``,
    among this process's descendants (Playwright's driver starts Chromium)."""
    marker = f"--user-data-dir={user_data_dir}"
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if marker in cmd and not any(arg.startswith("--type=") for arg in cmd):
            return proc
    return None


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """``proc`` and its descendants (a Chromium: its zygotes, renderers, GPU and utility processes)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(proc: psutil.Process) -> None:
    """SIGKILL ``proc`` and every descendant: a stopped or hung Chromium cannot refuse it."""
    for member in tree(proc):
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass

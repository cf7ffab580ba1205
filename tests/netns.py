"""Hosts for multi-host tests: Linux network namespaces on a bridge, made and removed by the test.

Each host is a namespace with its own address on 10.77.<n>.0/24, joined to a bridge in the
root namespace (where the test itself runs). Cutting a host off takes its link down: its
processes keep running but can no longer reach anyone, as with a pulled cable.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Host:
    name: str
    address: str
    veth_root: str

    def prefix(self) -> list[str]:
        """Prepend to a command to run it on this host."""
        return ["ip", "netns", "exec", self.name]

    def pids(self) -> set[int]:
        """Processes running on this host."""
        listed = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return {int(pid) for pid in listed.split()}

    def cut_off(self) -> None:
        ip("link", "set", self.veth_root, "down")


class Network:
    def __init__(self, subnet: int = 77) -> None:
        tag = secrets.token_hex(2)
        self.bridge = f"lbr{tag}"
        self.subnet = subnet
        self.gateway = f"10.{subnet}.0.1"
        self.hosts: list[Host] = []
        self.tag = tag
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self) -> Host:
        index = len(self.hosts) + 10
        name = f"lim{self.tag}h{index}"
        root_end, host_end = f"lv{self.tag}{index}", f"lh{self.tag}{index}"
        ip("netns", "add", name)
        ip("link", "add", root_end, "type", "veth", "peer", "name", host_end)
        ip("link", "set", host_end, "netns", name)
        ip("link", "set", root_end, "master", self.bridge)
        ip("link", "set", root_end, "up")
        address = f"10.{self.subnet}.0.{index}"
        for args in (
            ("addr", "add", f"{address}/24", "dev", host_end),
            ("link", "set", host_end, "up"),
            ("link", "set", "lo", "up"),
            ("route", "add", "default", "via", self.gateway),
        ):
            ip("netns", "exec", name, "ip", *args)
        host = Host(name=name, address=address, veth_root=root_end)
        self.hosts.append(host)
        return host

    def destroy(self) -> None:
        for host in self.hosts:
            for pid in host.pids():
                subprocess.run(["kill", "-9", str(pid)], capture_output=True)
            subprocess.run(["ip", "link", "del", host.veth_root], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

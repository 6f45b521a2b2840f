"""Free-port checks done before starting a service, so a clash is a clear error, not a dead server."""

from __future__ import annotations

import errno
import socket

import psutil


class PortInUseError(RuntimeError):
    """A port the stack needs is taken."""


def port_is_free(host: str, port: int) -> bool:
    """True when ``host:port`` can be bound right now (SO_REUSEADDR, as servers bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def who_listens(port: int) -> str | None:
    """A short description of the process listening on ``port``, when the OS lets us see it."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3]) or proc.name()})"
    except (psutil.AccessDenied, psutil.NoSuchProcess, PermissionError):
        return None
    return None


def require_free(host: str, port: int, *, service: str, flag: str, env_var: str | None = None) -> None:
    """Raise PortInUseError naming the flag and variable that choose another port."""
    if port_is_free(host, port):
        return
    owner = who_listens(port)
    by = f" by {owner}" if owner else " by another process"
    choose = f"pass {flag} PORT or set {env_var}" if env_var else f"pass {flag} PORT"
    raise PortInUseError(f"port {port} (for {service}) is in use{by}; {choose}, or stop that process")


def find_free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that is free now (for tests and the Airflow UI)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

"""The lab's transport: containers.podman.podman, with modules piped to `podman exec -i`.

The collection's plugin cannot pipeline (its `podman exec` has no stdin), so every task costs a
temporary directory, a copy, a chmod, the run and a removal: four `podman exec` calls, about 1.2 s
a task on 2 cores. Piping the module into one `podman exec -i` runs the same module the same way
in one call. Everything else (file transfer through the container's mount, the options) is the
collection's. Molecule's podman driver and inventory/lab name the connection `podman`; a plugin
of that short name in ansible.cfg's connection_plugins is found before the collection's redirect.
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)

DOCUMENTATION = r"""
name: podman
short_description: Run tasks in a podman container, pipelining modules through podman exec -i
description:
  - The containers.podman.podman connection, with pipelining.
options:
  remote_addr:
    description: Name or ID of the container.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
      - name: ansible_podman_host
  remote_user:
    description: User the commands run as in the container.
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Arguments put before every podman subcommand.
    default: ""
    ini:
      - section: defaults
        key: podman_extra_args
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: The podman program.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description: Pipe modules to the container's Python instead of copying them in first.
    type: boolean
    default: true
    ini:
      - section: connection
        key: pipelining
    env:
      - name: ANSIBLE_PIPELINING
    vars:
      - name: ansible_pipelining
"""


class Connection(PodmanConnection):
    transport = "podman"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        if in_data is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        # ConnectionBase's checks only (the parent would run the command without stdin).
        super(PodmanConnection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec", "--interactive"]
        if self.user:
            args += ["--user", self.user]
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")),
                            in_data)

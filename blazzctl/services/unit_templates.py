"""The unit file templates rendered by ``blazzctl.services.units`` (``str.format`` fields)."""

TARGET_UNIT = """\
{origin}
[Unit]
Description=blazz session daemons (all blazz-session@N instances)
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target
"""

SERVICE = """\
{origin}
# Change the configuration, then `blazzctl units install` again, rather than editing this file.
[Unit]
Description=blazz session daemon %i
PartOf=blazz.target
Wants=network-online.target
After=network-online.target mariadb.service mysql.service
# Burst x (RestartSec + TimeoutStartSec) < interval: a crash loop stops here and the
# unit stays failed until `systemctl reset-failed`.
StartLimitIntervalSec={t_start_limit_interval}
StartLimitBurst={t_start_limit_burst}

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
User={user}
Environment={config_env}
Environment=HOME=%S/blazz
Environment=PYTHONUNBUFFERED=1
# The daemon works in $STATE_DIRECTORY/session-%i.
StateDirectory=blazz
StateDirectoryMode=0700
Restart=on-failure
RestartSec={t_restart}
TimeoutStartSec={t_timeout_start}
# WATCHDOG=1 follows every successful lease renewal.
WatchdogSec={t_watchdog}
# SIGTERM to the daemon alone: it drains ({drain} s budget) and closes its browsers;
# whatever is left of the cgroup gets SIGKILL when it exits or at TimeoutStopSec.
KillMode=mixed
TimeoutStopSec={t_timeout_stop}
OOMPolicy=kill
MemoryHigh={memory_high}
MemoryMax={memory_max}
TasksMax={tasks_max}

# Hardening that Chromium tolerates: no MemoryDenyWriteExecute (V8's JIT), user/pid/net
# namespaces and chroot allowed (its sandbox).
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome={protect_home}
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=user pid net
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service seccomp chroot
SystemCallErrorNumber=EPERM
UMask=0077
DevicePolicy=closed
KeyringMode=private
RemoveIPC=yes

[Install]
WantedBy=blazz.target
"""

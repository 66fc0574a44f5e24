"""The unit file templates rendered by ``blazzctl.services.units`` (``str.format`` fields)."""

# The sandboxing both services share; ``{hardening}`` in a template (itself formatted first).
HARDENING = """\
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
"""

# What the services without a browser add to it (the session unit lets Chromium have its
# namespaces and its JIT); ``{strict}`` in a template.
STRICT = """\
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077
DevicePolicy=closed
KeyringMode=private
"""

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
# WATCHDOG=1 is sent only while the leases are fresh enough that, should the daemon freeze
# right then, the watchdog fires before they could expire: shorter than the fence deadline
# (0.75 x lease TTL). A frozen daemon does not act on SIGABRT: after TimeoutAbortSec the
# whole cgroup gets SIGKILL, Chromium included, so no browser outlives its lease.
WatchdogSec={t_watchdog}
TimeoutAbortSec={t_timeout_abort}
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
{hardening}RestrictNamespaces=user pid net
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

SYNC_SERVICE = """\
{origin}
# Started by blazz-sync.timer: asks the session daemons to sync every running account and
# waits for the outcome. Failures are in the journal (and the unit fails): errors only.
[Unit]
Description=blazz: sync chats, contacts and groups of every running account
Wants=network-online.target
After=network-online.target mariadb.service mysql.service

[Service]
Type=oneshot
ExecStart={sync_exec_start}
User={user}
Environment={config_env}
# The same HOME as the daemons: with the embedded SQLite database both find the same file.
Environment=HOME=%S/blazz
StateDirectory=blazz
StateDirectoryMode=0700
TimeoutStartSec={t_sync_timeout}

{hardening}{strict}"""

SYNC_TIMER = """\
{origin}
# The systemd alternative to sync.schedule (the daemons' own cron): enable one of the two.
#   systemctl enable --now blazz-sync.timer
[Unit]
Description=blazz: daily sync of chats, contacts and groups

[Timer]
OnCalendar={sync_on_calendar}
RandomizedDelaySec=300
Persistent=true

[Install]
WantedBy=timers.target
"""

API_SERVICE = """\
{origin}
# Change the configuration, then `blazzctl units install --api` again, rather than editing this file.
# The HTTP API (docs/api.md): listens on api.host:api.port (loopback unless api.allow_remote);
# put a TLS reverse proxy in front (docs/operations.md).
[Unit]
Description=blazz HTTP API (blazz-api)
Wants=network-online.target
After=network-online.target mariadb.service mysql.service blazz.target
StartLimitIntervalSec={t_start_limit_interval}
StartLimitBurst={t_start_limit_burst}

[Service]
# Started once exec'd; readiness is `blazzctl api health --wait` (deploy.sh's gate).
Type=exec
ExecStart={api_exec_start}
User={user}
Environment={config_env}
# The same HOME as the daemons: with the embedded SQLite database both find the same file.
Environment=HOME=%S/blazz
Environment=PYTHONUNBUFFERED=1
StateDirectory=blazz
StateDirectoryMode=0700
Restart=on-failure
RestartSec={t_restart}
# SIGTERM: no new connections; requests in flight (long polls last at most 30 s) finish first.
KillMode=mixed
TimeoutStopSec={t_api_timeout_stop}
TasksMax=512

{hardening}{strict}RemoveIPC=yes

[Install]
WantedBy=multi-user.target
"""

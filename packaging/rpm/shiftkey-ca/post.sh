# shiftkey-ca %post: the data directory (kept on erase: rpm has no purge, see
# packaging/README.md), and systemd told about the unit. The unit is not
# enabled: it needs configuring first (docs/install.md).
if [ ! -d /var/lib/shiftkey ]; then
	install -d -o shiftkey -g shiftkey -m 0700 /var/lib/shiftkey
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0

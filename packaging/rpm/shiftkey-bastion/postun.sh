# shiftkey-bastion %postun: after an upgrade ($1 >= 1), restart the service if it runs.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart shiftkey-bastion.service >/dev/null 2>&1 || :
	fi
fi
exit 0

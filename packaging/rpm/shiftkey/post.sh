# shiftkey %post: systemd told about the host refresh timer, not enabled:
# only enrolled hosts want it (`shiftkey host enroll ...`, then
# `systemctl enable --now shiftkey-host-refresh.timer`).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0

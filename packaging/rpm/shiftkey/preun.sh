# shiftkey %preun: on erase ($1 = 0), stop and disable the timer.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now shiftkey-host-refresh.timer >/dev/null 2>&1 || :
fi
exit 0

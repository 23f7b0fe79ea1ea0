# shiftkey %postun: systemd forgets the removed or replaced units.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0

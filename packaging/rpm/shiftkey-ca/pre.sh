# shiftkey-ca %pre: the system user the service runs as.
getent group shiftkey >/dev/null || groupadd -r shiftkey
getent passwd shiftkey >/dev/null || \
	useradd -r -g shiftkey -d /var/lib/shiftkey -M -s /sbin/nologin -c "Shiftkey certificate authority" shiftkey
exit 0

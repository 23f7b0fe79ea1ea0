# shiftkey-bastion %pre: the system user the service runs as.
getent group shiftkey-bastion >/dev/null || groupadd -r shiftkey-bastion
getent passwd shiftkey-bastion >/dev/null || \
	useradd -r -g shiftkey-bastion -d /var/lib/shiftkey-bastion -M -s /sbin/nologin -c "Shiftkey bastion" shiftkey-bastion
exit 0

-- Shiftkey CA store, version 8: certificate serials come from the store.
--
-- One sequence for user and host certificates. The CA reserves serials in
-- blocks (one committed UPDATE per block), so no two processes writing to
-- this store can ever hand out the same serial, and a serial reserved by a
-- process that died is never reused (a gap, not a duplicate).

CREATE TABLE serial_sequence (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL CHECK (last >= 0)   -- the highest serial reserved so far
);

-- Existing stores continue after the highest serial they recorded.
INSERT INTO serial_sequence (id, last) SELECT 1, MAX(
    COALESCE((SELECT MAX(serial) FROM certificates), 0),
    COALESCE((SELECT MAX(serial) FROM host_certificates), 0));

CREATE TRIGGER serial_sequence_no_delete BEFORE DELETE ON serial_sequence
BEGIN SELECT RAISE(ABORT, 'the serial sequence is kept'); END;
CREATE TRIGGER serial_sequence_only_grows BEFORE UPDATE ON serial_sequence
WHEN NEW.last < OLD.last
BEGIN SELECT RAISE(ABORT, 'serials are never handed out twice'); END;

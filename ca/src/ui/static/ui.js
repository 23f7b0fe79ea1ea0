// Shiftkey review UI: the player, seeking from the input list, speed,
// following a live session through the CA's event stream, and keeping
// relative times current. No inline script anywhere: the CSP forbids it.
// Every page reads right without this script; it only keeps pages current.
'use strict';

(function () {
  const el = document.getElementById('player');
  if (!el) return;
  const castUrl = el.dataset.cast;
  let start = Number.parseFloat(el.dataset.start || '0') || 0;
  let player = null;
  let speed = 1;

  function loadAssets() {
    return new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = '/ui/assets/player.css';
      document.head.appendChild(css);
      const js = document.createElement('script');
      js.src = '/ui/assets/player.js';
      js.onload = resolve;
      js.onerror = reject;
      document.head.appendChild(js);
    });
  }

  function create(at, autoPlay, posterAt) {
    if (player) {
      player.dispose();
      el.replaceChildren();
    }
    const live = el.dataset.live === 'true';
    const source = live ? { driver: 'eventsource', url: el.dataset.liveUrl, bufferTime: 0 } : castUrl;
    el.dataset.mode = live ? 'live' : 'recording';
    player = window.AsciinemaPlayer.create(source, el, {
      startAt: live ? undefined : at,
      speed,
      preload: true,
      autoPlay: live || autoPlay,
      poster: posterAt ? `npt:${posterAt}` : undefined,
      fit: 'width',
      cols: Number.parseInt(el.dataset.cols, 10) || undefined,
      rows: Number.parseInt(el.dataset.rows, 10) || undefined,
      terminalFontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    });
    window.shiftkeyPlayer = player;
  }

  loadAssets().then(
    () => create(start, false),
    () => {
      const missing = document.getElementById('player-missing');
      if (missing) missing.hidden = false;
    },
  );

  const speedSelect = document.getElementById('speed');
  if (speedSelect) {
    speedSelect.addEventListener('change', () => {
      speed = Number.parseFloat(speedSelect.value) || 1;
      const at = player ? player.getCurrentTime() : start;
      create(at, true);
    });
  }

  // Every input line seeks the player to its first keystroke.
  document.getElementById('input-list')?.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-seek]');
    if (!button || !player) return;
    const t = Number.parseFloat(button.dataset.seek) || 0;
    document.querySelectorAll('#input-list button[aria-pressed]').forEach((b) => b.removeAttribute('aria-pressed'));
    button.setAttribute('aria-pressed', 'true');
    Promise.resolve(player.seek(Math.max(0, t - 0.2))).then(() => player.play());
  });

  // A live session: the player follows the CA's event stream (its
  // `eventsource` driver reads the unnamed messages); the page reads the
  // same stream's `state` and `input` events and settles when it ends.
  if (el.dataset.live === 'true' && window.EventSource) {
    const liveUrl = el.dataset.liveUrl;
    const list = document.getElementById('input-list');
    const count = document.getElementById('input-count');
    const setText = (id, text) => {
      const node = document.getElementById(id);
      if (node) node.textContent = text;
    };
    let typed = '';
    let typedAt = 0;
    let cleared = false;
    const addInput = (t, text) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'seek';
      b.dataset.seek = String(t);
      const span = document.createElement('span');
      span.className = 't';
      span.textContent = fmtOffset(t);
      const code = document.createElement('code');
      code.append(...keysOf(text));
      b.append(span, ' ', code);
      li.append(b);
      list.append(li);
      if (count) count.textContent = String(list.children.length);
    };
    const stream = new EventSource(liveUrl);
    stream.addEventListener('input', (message) => {
      const { t, data } = JSON.parse(message.data);
      if (!cleared) {
        // The stream replays the input from the start.
        list.replaceChildren();
        cleared = true;
      }
      for (const c of data) {
        if (typed === '') typedAt = t;
        typed += c;
        if (c === '\r' || c === '\n') {
          addInput(typedAt, typed.replace(/[\r\n]+$/, ''));
          typed = '';
        }
      }
    });
    stream.addEventListener('state', (message) => {
      const s = JSON.parse(message.data);
      const status = document.querySelector('#session-status .badge');
      if (status) {
        status.textContent = s.status;
        status.className = `badge ${badgeClass(s.status)}`;
      }
      const bytes = document.getElementById('session-bytes');
      if (bytes) {
        bytes.dataset.bytes = String(s.bytes);
        bytes.textContent = fmtSize(s.bytes);
      }
      setText('session-events', String(s.events));
      const duration = document.getElementById('session-duration');
      if (duration) {
        const running = !s.ended_at;
        duration.dataset.started = String(s.started_at);
        duration.dataset.live = running ? 'true' : 'false';
        duration.textContent = running ? `running ${fmtDuration(s.duration)}` : fmtDuration(s.duration);
      }
      if (s.ended_at) {
        const ended = document.getElementById('session-ended');
        if (ended && !ended.querySelector('time')) ended.replaceChildren(...moment(s.ended_at));
        setText('session-end-reason', s.end_reason || (s.status === 'lost' ? 'lost: its bastion went silent' : 'not recorded'));
      }
      if (s.exit_status !== null && s.exit_status !== undefined) setText('session-exit', String(s.exit_status));
      if (s.digest) setText('session-digest', s.digest);
      if (s.final) {
        stream.close();
        if (!s.ended_at) setText('session-end-reason', s.status === 'lost' ? 'lost: its bastion went silent' : 'not recorded');
        if (typed !== '') addInput(typedAt, typed);
        const banner = document.getElementById('live-banner');
        if (banner) {
          banner.className = 'live-note ended';
          banner.textContent = `This session has ended (${s.status}). The player now plays the whole recording.`;
        }
        // The player switches from the live stream to the recording.
        el.dataset.live = 'false';
        // Showing the last screen, as the live view did.
        if (window.AsciinemaPlayer) create(0, false, s.duration);
        el.dataset.mode = 'recording';
      }
    });
    stream.addEventListener('failed', (message) => {
      stream.close();
      const banner = document.getElementById('live-banner');
      if (banner) banner.textContent = `Following stopped: ${JSON.parse(message.data).message}. Reload the page to try again.`;
    });
  }
})();

// Keys as people read them, boxed (as the server renders them).
function keysOf(text) {
  const parts = [];
  let plain = '';
  const key = (label) => {
    if (plain) parts.push(plain);
    plain = '';
    const k = document.createElement('kbd');
    k.className = 'key';
    k.textContent = label;
    parts.push(k);
  };
  for (const c of text) {
    const code = c.codePointAt(0);
    if (c === '\x7f' || c === '\b') key('⌫');
    else if (c === '\r' || c === '\n') key('⏎');
    else if (c === '\t') key('⇥');
    else if (c === '\x1b') key('Esc');
    else if (code < 0x20) key(`^${String.fromCharCode(code + 64)}`);
    else plain += c;
  }
  if (plain) parts.push(plain);
  return parts;
}

function badgeClass(status) {
  if (['sealed', 'issued', 'approved', 'ok', 'resolved', 'allow', 'info'].includes(status)) return 'good';
  if (['live', 'pending', 'open'].includes(status)) return 'live';
  if (['verification-failed', 'lost', 'denied', 'deny', 'error', 'broken', 'revoked'].includes(status)) return 'bad';
  return 'plain';
}

function fmtOffset(t) {
  return `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, '0')}`;
}

// As the server's html::size and html::duration.
function fmtSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const minutes = Math.floor((s % 3600) / 60);
  if (minutes === 0) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 3600)} h ${String(minutes).padStart(2, '0')} min`;
}

// As the server's html::relative.
function relative(unix, now) {
  const delta = now - unix;
  const span = Math.abs(delta);
  if (span < 10) return 'just now';
  let words;
  if (span < 60) words = `${span} s`;
  else if (span < 3600) words = `${Math.floor(span / 60)} min`;
  else if (span < 86400) {
    const minutes = Math.floor((span % 3600) / 60);
    words = minutes === 0 ? `${Math.floor(span / 3600)} h` : `${Math.floor(span / 3600)} h ${minutes} min`;
  } else {
    const days = Math.floor(span / 86400);
    words = `${days} day${days === 1 ? '' : 's'}`;
  }
  return delta >= 0 ? `${words} ago` : `in ${words}`;
}

// A moment as the server's html::when renders it.
function moment(unix) {
  const d = new Date(unix * 1000);
  const iso = d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const time = document.createElement('time');
  time.dateTime = iso;
  time.textContent = `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
  const rel = relative(unix, Math.floor(Date.now() / 1000));
  time.title = rel;
  const ago = document.createElement('span');
  ago.className = 'ago';
  ago.dataset.ago = String(unix);
  ago.textContent = `(${rel})`;
  return [time, ' ', ago];
}

// Relative times and a live session's running duration stay current.
setInterval(() => {
  const now = Math.floor(Date.now() / 1000);
  document.querySelectorAll('span.ago[data-ago]').forEach((span) => {
    const rel = relative(Number.parseInt(span.dataset.ago, 10), now);
    span.textContent = `(${rel})`;
    const time = span.previousElementSibling;
    if (time && time.tagName === 'TIME') time.title = rel;
  });
  const duration = document.getElementById('session-duration');
  if (duration && duration.dataset.live === 'true') {
    duration.textContent = `running ${fmtDuration(now - Number.parseInt(duration.dataset.started, 10))}`;
  }
}, 15000);

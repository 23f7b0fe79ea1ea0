// Shiftkey review UI: the player, seeking from the input list, speed, and
// following a live session. No inline script anywhere: the CSP forbids it.
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

  function create(at, autoPlay) {
    if (player) {
      player.dispose();
      el.replaceChildren();
    }
    player = window.AsciinemaPlayer.create(castUrl, el, {
      startAt: at,
      speed,
      preload: true,
      autoPlay,
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

  // A live session: poll the events after the ones already shown.
  if (el.dataset.live === 'true') {
    const out = document.getElementById('live-output');
    const list = document.getElementById('input-list');
    let next = 0;
    let typed = '';
    let typedAt = 0;
    // Terminal control sequences are not shown in the live text view.
    const strip = (s) =>
      s
        .replace(/\u001b\][^\u0007\u001b]*(\u0007|\u001b\\)/g, '')
        .replace(/\u001b[P^_X][^\u001b]*\u001b\\/g, '')
        .replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '')
        .replace(/\u001b[@-_]/g, '')
        .replace(/\r/g, '');
    const fmt = (t) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, '0')}`;
    const addInput = (t, text) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'seek';
      b.dataset.seek = String(t);
      const span = document.createElement('span');
      span.className = 't';
      span.textContent = fmt(t);
      const code = document.createElement('code');
      code.textContent = text;
      b.append(span, ' ', code);
      li.append(b);
      list.append(li);
    };
    const poll = async () => {
      try {
        const response = await fetch(`${el.dataset.events}?from=${next}`, { credentials: 'same-origin' });
        if (!response.ok) return;
        const answer = await response.json();
        if (next === 0) {
          out.textContent = '';
          list.replaceChildren();
        }
        for (const [t, code, data] of answer.events) {
          if (code === 'o') out.textContent += strip(data);
          if (code === 'i') {
            if (typed === '') typedAt = t;
            for (const c of data) {
              typed += c;
              if (c === '\r' || c === '\n') {
                addInput(typedAt, typed.trim());
                typed = '';
              }
            }
          }
        }
        if (out.textContent.length > 200000) out.textContent = out.textContent.slice(-200000);
        out.scrollTop = out.scrollHeight;
        next = answer.next;
        if (answer.status !== 'live') {
          out.insertAdjacentText('beforeend', `\n[session ${answer.status}]`);
          return;
        }
      } catch (_) {
        // The next poll tries again.
      }
      setTimeout(poll, 1000);
    };
    poll();
  }
})();

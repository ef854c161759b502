// The demo page (DEMO_PAGE=true, `make dev`): asks its "backend" (POST /demo/sessions) for a session,
// opens the widget with it, and lists what the widget posts back.

const LABELS = {
  numeric: 'A code sent by SMS (numeric)',
  qr_code: 'A QR code to scan, then a code',
  device: 'A code from a token device',
  approval: 'An approval in the bank app (no code)',
};

for (const span of document.querySelectorAll('[data-scenario]')) {
  span.textContent = LABELS[span.dataset.scenario] || span.dataset.scenario;
}

const frame = document.getElementById('widget');
const log = document.getElementById('log');

function note(text) {
  const item = document.createElement('li');
  item.textContent = text;
  log.append(item);
}

document.getElementById('start').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const answer = await fetch('/demo/sessions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ scenario: form.get('scenario') }),
  });
  const body = await answer.json();
  if (!answer.ok) {
    note(`The backend could not start a session: ${body.detail || body.title || answer.status}`);
    return;
  }
  const fragment = new URLSearchParams({ session: body.session, secret: body.secret });
  if (form.get('lang')) fragment.set('lang', form.get('lang'));
  frame.src = `/widget#${fragment}`;
  frame.hidden = false;
  document.getElementById('idle').hidden = true;
  note(`Session ${body.session} started (${form.get('scenario')}).`);
});

window.addEventListener('message', (event) => {
  if (event.origin !== location.origin || event.source !== frame.contentWindow) return;
  const { type, status, outcome } = event.data || {};
  note(`${type}: ${status || ''}${outcome && outcome.code ? ` (${outcome.code})` : ''}`);
});

// The MFA widget: /widget#session=<id>&secret=<client secret>[&lang=es|pt|en], built on mfa-client.js.
//
// The secret arrives in the URL fragment, which no browser sends to a server or in a Referer; once read,
// it is dropped from the address (and kept for this tab only, so a reload still works). The end state
// is posted to the embedding page, to the origins the service lists (WIDGET_FRAME_ANCESTORS) only.

import { MfaError, MfaSession } from '../mfa-client.js';
import { qrSvg } from './qr.js';
import { STRINGS, pickLanguage } from './strings.js';

const $ = (id) => document.getElementById(id);
const KEPT = 'belvo-mfa-widget'; // sessionStorage: {session, secret} of this tab's widget
const VIEWS = ['loading', 'challenge', 'working', 'done'];
const DONE_ICONS = { succeeded: '✓', failed: '!', expired: '⏱', cancelled: '×', invalid: '!' };

function readLaunch() {
  const params = new URLSearchParams(location.hash.slice(1));
  const launch = { session: params.get('session'), secret: params.get('secret'), lang: params.get('lang') };
  if (launch.session && launch.secret) {
    try {
      sessionStorage.setItem(KEPT, JSON.stringify({ session: launch.session, secret: launch.secret }));
    } catch {
      // storage refused (a privacy setting): a reload will need the full link again
    }
    const kept = new URLSearchParams({ session: launch.session });
    if (launch.lang) kept.set('lang', launch.lang);
    history.replaceState(null, '', `${location.pathname}#${kept}`);
  } else if (launch.session) {
    try {
      const saved = JSON.parse(sessionStorage.getItem(KEPT) || 'null');
      if (saved && saved.session === launch.session) launch.secret = saved.secret;
    } catch {
      launch.secret = null;
    }
  }
  return launch;
}

function forgetLaunch() {
  try {
    sessionStorage.removeItem(KEPT);
  } catch {
    // nothing was kept
  }
}

const launch = readLaunch();
const lang = pickLanguage(launch.lang, navigator.languages);
const t = STRINGS[lang];
const parentOrigins = (document.body.dataset.parentOrigins || '').split(' ').filter(Boolean);
const main = document.querySelector('main');
const input = $('token');
let mfa = null;
let busy = false;
let countdownTimer = null;
let warned = false;

document.documentElement.lang = lang;
document.title = t.pageTitle;
$('loading-text').textContent = t.loadingText;
$('token-label').textContent = t.codeLabel;
$('challenge-value-label').textContent = t.valueLabel;
$('submit').textContent = t.submit;
$('cancel').textContent = t.cancel;
$('countdown-label').textContent = t.timeLeft;
$('working-text').textContent = t.workingText;

function show(view, title) {
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  $('title').textContent = title;
  main.setAttribute('aria-busy', String(view === 'loading' || view === 'working'));
  main.dataset.view = view;
}

function announce(text) {
  $('announcer').textContent = text;
}

function setBusy(on) {
  busy = on;
  $('submit').disabled = on;
  $('cancel').disabled = on;
  input.readOnly = on;
  $('submit').textContent = on ? t.sending : t.submit;
}

function message(id, text) {
  $(id).textContent = text || '';
  $(id).hidden = !text;
}

function fieldError(text) {
  message('token-error', text);
  if (text) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  if (text) input.focus();
}

// --- the challenge -----------------------------------------------------------------------------------

function renderChallenge({ step, challenge, expectsUserInput }) {
  show('challenge', t.challengeTitle);
  setBusy(false);
  message('form-error', '');
  fieldError('');
  message('step', step > 1 ? t.step(step) : '');
  $('instructions').textContent = challenge.instructions || '';
  const qr = $('qr');
  qr.replaceChildren();
  const isQr = String(challenge.type || '').toLowerCase().includes('qr') && Boolean(challenge.value);
  if (isQr) qr.append(qrSvg(challenge.value, t.qrLabel));
  qr.hidden = !isQr;
  // Any other value is text the user needs, e.g. a challenge code to type into a token generator.
  $('challenge-value-text').textContent = isQr ? '' : challenge.value || '';
  $('challenge-value').hidden = isQr || !challenge.value;
  $('token-field').hidden = !expectsUserInput;
  input.value = '';
  input.setAttribute('inputmode', challenge.type === 'numeric' ? 'numeric' : 'text');
  input.required = expectsUserInput;
  message('approval', expectsUserInput ? '' : t.approvalText);
  startCountdown();
  (expectsUserInput ? input : $('submit')).focus();
  announce(step > 1 ? `${t.nextStep} ${challenge.instructions || ''}` : `${t.challengeTitle}. ${challenge.instructions || ''}`);
}

function clock(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function tick() {
  const left = mfa.expiresInMs();
  $('countdown').hidden = left === null;
  if (left === null) return;
  const seconds = Math.max(0, Math.ceil(left / 1000));
  $('countdown-time').textContent = clock(seconds);
  $('countdown-time').dateTime = `PT${seconds}S`;
  const urgent = seconds < 60;
  $('countdown').classList.toggle('urgent', urgent);
  if (urgent && !warned) {
    warned = true;
    announce(t.lastMinute);
  }
}

function startCountdown() {
  stopCountdown();
  warned = false;
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function stopCountdown() {
  clearInterval(countdownTimer);
  countdownTimer = null;
}

// --- where the session is ----------------------------------------------------------------------------

function renderStatus(session) {
  switch (session.status) {
    case 'registering':
    case 'retrieving':
      show('loading', t.loadingTitle);
      break;
    case 'awaiting_token':
      if (main.dataset.view !== 'challenge') show('challenge', t.challengeTitle);
      setBusy(false);
      break;
    case 'submitted':
      stopCountdown();
      show('working', t.workingTitle);
      announce(`${t.workingTitle}. ${t.workingText}`);
      break;
    default:
      renderDone(session.status, session);
  }
}

function failureText(outcome) {
  return (outcome && t.failures[outcome.code]) || t.failedText;
}

function renderDone(status, session) {
  stopCountdown();
  const outcome = session && session.outcome;
  const texts = {
    succeeded: [t.succeededTitle, t.succeededText],
    failed: [t.failedTitle, failureText(outcome)],
    expired: [t.expiredTitle, t.expiredText],
    cancelled: [t.cancelledTitle, t.cancelledText],
    invalid: [t.invalidTitle, t.invalidText],
  };
  const [title, text] = texts[status] || texts.failed;
  show('done', title);
  $('view-done').dataset.status = status;
  $('done-icon').textContent = DONE_ICONS[status] || '!';
  $('done-text').textContent = text;
  // The bank's own words, when the bank answered (Belvo's message); the service's own outcomes have none.
  const bankSaid = status === 'failed' && outcome && outcome.http_status && outcome.message;
  message('done-detail', bankSaid ? `${t.bankSaid} “${outcome.message}”` : '');
  announce(`${title}. ${text}`);
  $('title').focus();
}

// --- the embedding page ------------------------------------------------------------------------------

/** Post to the parent page, if it is one of the listed origins (or this service's own pages). */
function tellParent(data) {
  if (window.parent === window) return;
  const allowed = [location.origin, ...parentOrigins];
  const ancestors = location.ancestorOrigins;
  // Where the browser names the parent's origin, post there alone; elsewhere post to each allowed
  // origin, and the browser delivers only to the one the parent really has.
  const targets = ancestors && ancestors.length ? [ancestors[0]].filter((o) => allowed.includes(o)) : allowed;
  for (const origin of targets) window.parent.postMessage(data, origin);
}

function endMessage(session) {
  const { outcome } = session;
  return {
    type: 'belvo-mfa:done', session: session.id, status: session.status, step: session.step,
    outcome: outcome ? { http_status: outcome.http_status, code: outcome.code, message: outcome.message } : null,
  };
}

// --- wiring ------------------------------------------------------------------------------------------

function invalidLink(code) {
  renderDone('invalid', null);
  forgetLaunch();
  tellParent({ type: 'belvo-mfa:error', session: launch.session || null, code });
}

$('view-challenge').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (busy) return;
  let token;
  if (!$('token-field').hidden) {
    token = input.value.replace(/[\s-]/g, '');
    if (!token) return fieldError(t.emptyCode);
    if (input.getAttribute('inputmode') === 'numeric' && !/^\d+$/.test(token)) return fieldError(t.digitsOnly);
  }
  fieldError('');
  message('form-error', '');
  setBusy(true);
  try {
    await mfa.submit(token); // the status events move the view on
  } catch (err) {
    setBusy(false);
    if (!(err instanceof MfaError)) message('form-error', t.connectionLost);
    else if (err.status === 422) fieldError(t.notAccepted);
    else if (err.status === 429) message('form-error', t.tooManyAttempts);
    else if (err.status !== 409 && err.status !== 410) message('form-error', t.connectionLost);
  }
});

$('cancel').addEventListener('click', async () => {
  if (busy) return;
  setBusy(true);
  try {
    await mfa.cancel();
  } catch (err) {
    setBusy(false);
    if (!(err instanceof MfaError) || err.status !== 409) message('form-error', t.connectionLost);
  }
});

show('loading', t.loadingTitle);
if (!launch.session || !launch.secret) {
  invalidLink('incomplete_link');
} else {
  mfa = new MfaSession({ baseUrl: location.origin, sessionId: launch.session, clientSecret: launch.secret });
  mfa.addEventListener('status', (e) => renderStatus(e.detail.session));
  mfa.addEventListener('challenge', (e) => renderChallenge(e.detail));
  mfa.addEventListener('done', (e) => {
    forgetLaunch();
    tellParent(endMessage(e.detail.session));
  });
  mfa.addEventListener('error', (e) => invalidLink(e.detail.error.code || 'unavailable'));
  mfa.start();
}

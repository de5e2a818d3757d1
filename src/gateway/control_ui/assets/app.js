// The clawback control UI. Plain JS, no framework, no build step.
//
// Every datum comes over one WebSocket speaking OpenClaw's protocol: the
// gateway's `connect.challenge`, our `connect` with the token the user
// pasted (kept in sessionStorage, never in a URL), then req/res frames and
// the events this connection may see. Text from the gateway is only ever
// put into the page as text (textContent), never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'clawback.gatewayToken';
  const EVENTS_MAX = 300;          // rows kept in the live event list
  const TIMELINE_PAGE = 1000;      // entries per clawback.timeline call (the method's bound)
  const TIMELINE_ENTRIES_MAX = 50000;
  const PRE_CHARS_MAX = 200000;    // JSON shown per block, at most
  const REQUEST_TIMEOUT_MS = 30000;
  const MAIN_SESSION = 'agent:main:main';

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  let socket = null;
  let nextRequest = 1;
  const pending = new Map();
  let reconnectDelay = 1000;
  let reconnectTimer = null;
  let authRefused = false;
  let chatSession = MAIN_SESSION;
  const runBubbles = new Map();    // runId -> the assistant bubble it streams into
  let eventsSeen = 0;
  let timeline = { key: null, entries: [], index: -1, loading: false };
  let stepShown = 0;               // guards against a slow detail answer overwriting a newer one
  let auditTimer = null;
  let sessionsTimer = null;

  // ---- connection ----------------------------------------------------

  function setStatus(text, state) {
    const status = $('status');
    status.textContent = text;
    status.dataset.state = state;
  }

  function randomId() {
    // crypto.randomUUID needs a secure context; a LAN http page is not one.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function connect() {
    clearTimeout(reconnectTimer);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      setStatus('paste the gateway token', 'idle');
      return;
    }
    if (socket) socket.close();
    authRefused = false;
    setStatus('connecting…', 'connecting');
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
    const ws = new WebSocket(url);
    socket = ws;
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      onFrame(ws, frame, token);
    };
    ws.onclose = (close) => {
      if (socket !== ws) return;
      socket = null;
      for (const [, waiter] of pending) waiter.reject(new Error('connection closed'));
      pending.clear();
      const why = close.reason || 'code ' + close.code;
      if (authRefused) {
        setStatus('refused: ' + why, 'error');
        return;
      }
      setStatus('disconnected (' + why + '), retrying', 'error');
      reconnectTimer = setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 30000);
    };
  }

  function onFrame(ws, frame, token) {
    if (frame.type === 'event') {
      if (frame.event === 'connect.challenge') {
        sendConnect(ws, token);
        return;
      }
      showEvent(frame);
      if (frame.event === 'chat') onChat(frame.payload || {});
      if (frame.event === 'sessions.changed') scheduleSessions();
      return;
    }
    if (frame.type !== 'res') return;
    if (frame.id === 'connect') {
      onHello(frame);
      return;
    }
    const waiter = pending.get(frame.id);
    if (!waiter) return;
    pending.delete(frame.id);
    clearTimeout(waiter.timer);
    if (frame.ok) waiter.resolve(frame.payload);
    else waiter.reject(new Error((frame.error && frame.error.message) || 'request failed'));
  }

  function sendConnect(ws, token) {
    ws.send(JSON.stringify({
      type: 'req', id: 'connect', method: 'connect',
      params: {
        minProtocol: 4, maxProtocol: 4,
        client: { id: 'openclaw-control-ui', version: 'clawback-ui', platform: 'web', mode: 'ui' },
        role: 'operator',
        scopes: ['operator.read', 'operator.write'],
        auth: { token },
        userAgent: navigator.userAgent,
      },
    }));
  }

  function onHello(frame) {
    if (!frame.ok) {
      authRefused = true;
      setStatus((frame.error && frame.error.message) || 'connect refused', 'error');
      return;
    }
    reconnectDelay = 1000;
    const scopes = ((frame.payload && frame.payload.auth && frame.payload.auth.scopes) || []).join(', ');
    setStatus('connected (' + scopes + ')', 'connected');
    loadSessions();
    loadHistory(chatSession);
    refreshAudit();
  }

  function request(method, params) {
    return new Promise((resolve, reject) => {
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        reject(new Error('not connected'));
        return;
      }
      const id = 'ui' + nextRequest++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(method + ' timed out'));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      const frame = { type: 'req', id, method };
      if (params !== undefined) frame.params = params;
      socket.send(JSON.stringify(frame));
    });
  }

  // ---- live events ---------------------------------------------------

  function showEvent(frame) {
    eventsSeen += 1;
    $('events-count').textContent = String(eventsSeen);
    const row = el('li');
    row.dataset.event = frame.event;
    if (frame.payload && frame.payload.state) row.dataset.state = frame.payload.state;
    const time = new Date().toLocaleTimeString();
    row.append(el('span', 'muted', time + ' '), el('span', 'name', frame.event),
      el('span', '', ' ' + JSON.stringify(frame.payload === undefined ? null : frame.payload).slice(0, 240)));
    row.title = JSON.stringify(frame.payload, null, 2).slice(0, 4000);
    const list = $('events');
    list.prepend(row);
    while (list.children.length > EVENTS_MAX) list.lastChild.remove();
  }

  // ---- sessions ------------------------------------------------------

  function scheduleSessions() {
    clearTimeout(sessionsTimer);
    sessionsTimer = setTimeout(loadSessions, 250);
  }

  async function loadSessions() {
    try {
      const result = await request('sessions.list', { limit: 200 });
      const list = $('sessions');
      list.replaceChildren();
      for (const row of result.sessions || []) {
        const item = el('li');
        item.dataset.key = row.key;
        item.setAttribute('aria-selected', String(row.key === chatSession));
        item.append(el('div', 'key', row.key),
          el('div', 'meta', (row.messageCount || 0) + ' messages · ' + (row.model || 'default model') +
            ' · ' + (row.status || '') + ' · ' + new Date(row.updatedAt).toLocaleString()));
        item.addEventListener('click', () => selectSession(row.key));
        item.addEventListener('dblclick', () => openTimeline(row.key));
        list.append(item);
      }
      if (!list.children.length) list.append(el('li', 'muted', 'no sessions yet: send a message'));
    } catch (error) {
      $('sessions').replaceChildren(el('li', 'muted', 'sessions.list failed: ' + error.message));
    }
  }

  function selectSession(key) {
    chatSession = key;
    $('chat-session').textContent = key;
    for (const item of $('sessions').children) {
      item.setAttribute('aria-selected', String(item.dataset.key === key));
    }
    loadHistory(key);
  }

  // ---- chat ----------------------------------------------------------

  function textOf(message) {
    if (!message) return '';
    if (typeof message.content === 'string') return message.content;
    return (message.content || []).filter((part) => part.type === 'text')
      .map((part) => part.text).join('');
  }

  function addMessage(role, text, state) {
    const bubble = el('li', 'msg ' + role, text);
    if (state) bubble.dataset.state = state;
    const log = $('chat-log');
    log.append(bubble);
    log.scrollTop = log.scrollHeight;
    return bubble;
  }

  async function loadHistory(key) {
    try {
      const history = await request('chat.history', { sessionKey: key, limit: 50 });
      if (key !== chatSession) return;
      $('chat-log').replaceChildren();
      runBubbles.clear();
      for (const message of history.messages || []) {
        const text = textOf(message);
        if (text && (message.role === 'user' || message.role === 'assistant')) {
          addMessage(message.role, text, 'final');
        }
      }
    } catch (error) {
      addMessage('error', 'chat.history failed: ' + error.message);
    }
  }

  async function sendChat() {
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    const runId = 'ui-' + randomId();
    addMessage('user', text, 'final');
    runBubbles.set(runId, addMessage('assistant', '', 'waiting'));
    try {
      await request('chat.send', { sessionKey: chatSession, message: text, idempotencyKey: runId });
    } catch (error) {
      const bubble = runBubbles.get(runId);
      bubble.className = 'msg error';
      bubble.dataset.state = 'error';
      bubble.textContent = 'chat.send failed: ' + error.message;
    }
  }

  function onChat(payload) {
    if (payload.sessionKey && payload.sessionKey !== chatSession && !runBubbles.has(payload.runId)) return;
    let bubble = runBubbles.get(payload.runId);
    if (!bubble) {
      // A run started elsewhere (another client, a channel) on this session.
      if (payload.state !== 'delta' && payload.state !== 'final') return;
      bubble = addMessage('assistant', '', 'streaming');
      runBubbles.set(payload.runId, bubble);
    }
    if (payload.state === 'delta') {
      const text = textOf(payload.message);
      bubble.textContent = text || bubble.textContent + (payload.deltaText || '');
      bubble.dataset.state = 'streaming';
      bubble.dataset.deltas = String(Number(bubble.dataset.deltas || 0) + 1);
    } else if (payload.state === 'final') {
      const text = textOf(payload.message);
      if (text) bubble.textContent = text;
      bubble.dataset.state = 'final';
      scheduleSessions();
      refreshAudit();
    } else if (payload.state === 'error' || payload.state === 'aborted') {
      bubble.className = 'msg error';
      bubble.dataset.state = payload.state;
      bubble.textContent = payload.errorMessage || payload.state;
    }
    const log = $('chat-log');
    log.scrollTop = log.scrollHeight;
  }

  // ---- audit ---------------------------------------------------------

  async function refreshAudit() {
    clearTimeout(auditTimer);
    let status;
    try {
      status = await request('clawback.audit.status');
    } catch (error) {
      $('audit-chain').textContent = 'clawback.audit.status failed: ' + error.message;
      return;
    }
    const chain = status.chain;
    const line = $('audit-chain');
    if (chain.failure) {
      line.className = 'bad';
      line.textContent = 'Chain BROKEN at seq ' + chain.failure.seq + ': ' + chain.failure.detail;
    } else {
      const through = chain.verifiedThroughSeq === null ? 'nothing yet'
        : 'seq 0 to ' + chain.verifiedThroughSeq;
      line.className = chain.complete ? 'good' : '';
      line.textContent = 'Chain verified by this gateway: ' + through + ' (' + chain.verifiedRecords +
        ' of ' + status.log.nextSeq + ' records' + (chain.complete ? ')' : ', checking…)');
      if (!chain.complete) auditTimer = setTimeout(refreshAudit, 200);
    }
    const checkpoint = status.checkpoint;
    const cp = $('audit-checkpoint');
    if (!checkpoint) {
      cp.className = 'muted';
      cp.textContent = 'No Merkle checkpoint yet (the gateway signs one every minute while records arrive).';
    } else if (checkpoint.error) {
      cp.className = 'bad';
      cp.textContent = 'Latest checkpoint unreadable: ' + checkpoint.error;
    } else {
      const signature = checkpoint.signature.valid ? 'signature valid (' + checkpoint.signature.key + ')'
        : 'signature INVALID: ' + checkpoint.signature.error;
      const matches = checkpoint.matchesLog === true ? 'root matches the log'
        : checkpoint.matchesLog === false ? 'root DOES NOT match the log' : 'root not compared yet';
      cp.className = checkpoint.signature.valid && checkpoint.matchesLog !== false ? 'good' : 'bad';
      cp.textContent = 'Merkle checkpoint at seq ' + checkpoint.seq + ': ' + checkpoint.treeSize +
        ' records, root ' + checkpoint.rootHash.slice(0, 16) + '…, signed ' +
        new Date(checkpoint.timeMs).toLocaleString() + '; ' + signature + '; ' + matches + '.';
    }
  }

  // ---- replay timeline -------------------------------------------------

  async function openTimeline(key) {
    if (timeline.loading) return;
    timeline = { key, entries: [], index: -1, loading: true };
    $('timeline-title').textContent = key + ' (loading…)';
    $('timeline-list').replaceChildren();
    let after = null;
    try {
      for (;;) {
        const params = { sessionKey: key, limit: TIMELINE_PAGE };
        if (after !== null) params.after = after;
        const page = await request('clawback.timeline', params);
        if (timeline.key !== key) return;
        timeline.entries.push(...page.entries);
        after = page.nextAfter;
        if (!page.hasMore || after === null || timeline.entries.length >= TIMELINE_ENTRIES_MAX) break;
      }
    } catch (error) {
      $('timeline-title').textContent = key + ': ' + error.message;
      timeline.loading = false;
      return;
    }
    timeline.loading = false;
    renderTimeline();
    if (timeline.entries.length) showStep(0);
  }

  function renderTimeline() {
    const list = $('timeline-list');
    const rows = document.createDocumentFragment();
    timeline.entries.forEach((entry, index) => {
      const row = el('li', '', String(entry.seq).padStart(6) + '  ' +
        new Date(entry.ts).toISOString().slice(11, 23) + '  ' + entry.summary);
      row.dataset.index = String(index);
      row.dataset.kind = entry.kind;
      row.dataset.category = entry.category;
      rows.append(row);
    });
    list.replaceChildren(rows);
    $('timeline-title').textContent = timeline.key + ' · ' + timeline.entries.length + ' steps';
  }

  function showJson(node, value) {
    const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
    node.textContent = text.length > PRE_CHARS_MAX
      ? text.slice(0, PRE_CHARS_MAX) + '\n… (' + text.length + ' characters in all)' : text;
  }

  async function detailOf(seq) {
    const params = { sessionKey: timeline.key, limit: 1, details: true };
    if (seq > 0) params.after = seq - 1;
    const page = await request('clawback.timeline', params);
    const entry = page.entries[0];
    if (!entry || entry.seq !== seq) throw new Error('step ' + seq + ' is no longer in the log');
    if (!entry.detail) throw new Error('step ' + seq + ' is too large to show (' + entry.detailOmittedBytes + ' bytes)');
    return entry.detail;
  }

  async function showStep(index) {
    if (index < 0 || index >= timeline.entries.length) return;
    timeline.index = index;
    const shown = ++stepShown;
    const list = $('timeline-list');
    for (const row of list.querySelectorAll('li[aria-selected="true"]')) row.removeAttribute('aria-selected');
    const row = list.children[index];
    row.setAttribute('aria-selected', 'true');
    row.scrollIntoView({ block: 'nearest' });
    const entry = timeline.entries[index];
    $('step-position').textContent = (index + 1) + ' / ' + timeline.entries.length;
    $('step-summary').textContent = 'seq ' + entry.seq + ' · ' + new Date(entry.ts).toISOString() +
      ' · ' + entry.kind + ' · ' + entry.actor + '\n' + entry.summary;
    $('step-detail').dataset.seq = String(entry.seq);
    $('step-detail').dataset.state = 'loading';
    try {
      const detail = await detailOf(entry.seq);
      if (shown !== stepShown) return;
      showJson($('step-record'), detail.record);
      const view = $('llm-view');
      if (!detail.llm) {
        view.hidden = true;
      } else {
        // Show the call's request and response together, whichever was picked.
        const pair = timeline.entries.find((other) => other.llmCallId === entry.llmCallId &&
          other.seq !== entry.seq);
        const other = pair ? await detailOf(pair.seq) : null;
        if (shown !== stepShown) return;
        const request = detail.llm.phase === 'request' ? detail.llm : other && other.llm;
        const response = detail.llm.phase === 'response' ? detail.llm : other && other.llm;
        showJson($('llm-request'), request || '(no recorded request in this session)');
        showJson($('llm-response'), response || '(no response recorded yet)');
        view.hidden = false;
      }
      $('step-detail').dataset.state = 'shown';
    } catch (error) {
      if (shown !== stepShown) return;
      $('step-summary').textContent += '\n' + error.message;
      $('step-detail').dataset.state = 'error';
    }
  }

  function nextLlmStep() {
    for (let index = timeline.index + 1; index < timeline.entries.length; index++) {
      if (timeline.entries[index].category === 'llm') {
        showStep(index);
        return;
      }
    }
  }

  // ---- wiring --------------------------------------------------------

  function start() {
    $('auth').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token').value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('token').value = '';
      connect();
    });
    $('forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      authRefused = true;
      if (socket) socket.close();
      setStatus('token forgotten', 'idle');
    });
    $('sessions-refresh').addEventListener('click', loadSessions);
    $('audit-refresh').addEventListener('click', refreshAudit);
    $('chat-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sendChat();
    });
    $('chat-input').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        sendChat();
      }
    });
    $('timeline-open').addEventListener('click', () => openTimeline(chatSession));
    $('timeline-list').addEventListener('click', (event) => {
      const row = event.target.closest('li');
      if (row) showStep(Number(row.dataset.index));
    });
    $('step-first').addEventListener('click', () => showStep(0));
    $('step-prev').addEventListener('click', () => showStep(timeline.index - 1));
    $('step-next').addEventListener('click', () => showStep(timeline.index + 1));
    $('step-last').addEventListener('click', () => showStep(timeline.entries.length - 1));
    $('step-next-llm').addEventListener('click', nextLlmStep);
    document.addEventListener('keydown', (event) => {
      if (event.target.closest('input, textarea')) return;
      const moves = { j: 1, ArrowRight: 1, ArrowDown: 1, k: -1, ArrowLeft: -1, ArrowUp: -1 };
      if (event.key in moves) showStep(timeline.index + moves[event.key]);
      else if (event.key === 'Home') showStep(0);
      else if (event.key === 'End') showStep(timeline.entries.length - 1);
      else if (event.key === 'l') nextLlmStep();
      else return;
      event.preventDefault();
    });
    connect();
  }

  start();
})();

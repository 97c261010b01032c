// The training assistant: POST /trainingassistent/ streams Markdown as plain text; the
// panel shows it as it arrives, rendered by markdown.js (text nodes only, never HTML).

import { describe, postStream } from '../api.js';
import { h } from '../dom.js';
import { field } from '../forms.js';
import { renderMarkdown } from '../markdown.js';

export function assistantPanel(model, cleanups) {
  const lang = field({ name: 'lang', label: 'Language', control: 'select',
    options: [['en', 'English'], ['zh', '中文']] });
  const ask = h('button', { type: 'submit' }, 'Ask for advice');
  const cancel = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Cancel');
  const state = h('p', { class: 'muted assistant-state', role: 'status' });
  const advice = h('div', { class: 'advice', 'aria-live': 'polite', 'aria-busy': 'false' });
  const form = h('form', { class: 'inline-form' }, lang.wrapper,
    h('div', { class: 'actions' }, ask, cancel));
  let controller = null;
  cleanups.push(() => controller?.abort());
  cancel.addEventListener('click', () => controller?.abort());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    controller?.abort();
    controller = new AbortController();
    let text = '';
    let pieces = 0;
    ask.disabled = true;
    cancel.hidden = false;
    advice.replaceChildren();
    advice.setAttribute('aria-busy', 'true');
    advice.dataset.state = 'streaming';
    state.textContent = 'Waiting for the assistant…';
    try {
      await postStream('/trainingassistent/', { model_id: model.id, lang: lang.control.value },
        (piece) => {
          text += piece;
          pieces += 1;
          advice.replaceChildren(renderMarkdown(text));
          state.textContent = `Receiving advice… (${text.length} characters)`;
        }, { signal: controller.signal });
      state.textContent = `Done: ${text.length} characters in ${pieces} pieces.`;
      advice.dataset.state = 'done';
    } catch (err) {
      state.textContent = '';
      advice.append(h('p', { class: 'error', role: 'alert' }, describe(err)));
      advice.dataset.state = 'failed';
    } finally {
      advice.setAttribute('aria-busy', 'false');
      ask.disabled = false;
      cancel.hidden = true;
    }
  });
  return h('section', { class: 'panel wide', 'aria-labelledby': 'assistant-h' },
    h('h2', { id: 'assistant-h' }, 'Training assistant'),
    h('p', { class: 'muted' }, 'Advice worked out from this run\'s curve, metrics and settings.'),
    form, state, advice);
}

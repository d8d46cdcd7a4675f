"""The lab's look: a Soft theme in the Playground's blue and orange, and the CSS of its own HTML pieces.

Fonts are the system's (no web fonts: the lab runs offline). Each `*_CSS` string is the `css_template` of
one `gr.HTML` component, scoped to it by Gradio; `CSS` is the page-level sheet passed to `launch()`.
"""

import gradio as gr

THEME = gr.themes.Soft(
    primary_hue="blue", secondary_hue="orange", neutral_hue="slate",
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)
CSS = """
.gradio-container { max-width: 1680px !important; }
.rl-next { margin-top: 2px; }
/* one screen on a projector: the transport bar, the status and two rows of charts fit in 1280x720 */
#rl-main { gap: 8px !important; }
/* a phone: the transport bar and the charts first, the settings after them, in the page's own scroll */
@media (max-width: 700px) {
  #rl-main { order: -1; }
  #rl-side { position: static; max-height: none; overflow: visible; border-right: none; padding-right: 0; }
}
#rl-formula .katex-display { overflow-x: auto; overflow-y: hidden; padding-bottom: 2px; }
#rl-side { border-right: 1px solid var(--border-color-primary); padding-right: 10px;
  position: sticky; top: 8px; align-self: flex-start; max-height: calc(100vh - 16px);
  overflow-y: auto; overflow-x: hidden; flex-wrap: nowrap !important; scrollbar-width: thin; }
#rl-side > * { flex-shrink: 0; }
#rl-transport button { min-width: 88px; }
#rl-side .info-text { font-size: 11.5px; line-height: 1.3; }
/* the Advanced controls are labelled with dotted keys (algorithm.gamma): let a long one wrap, not be cut off */
#rl-side [data-testid="block-info"], #rl-side .label-text, #rl-side .info-text { overflow-wrap: anywhere; }
/* empty notes take no room */
#rl-live:has(.prose:empty), #rl-problems:has(.prose:empty), #rl-checks:has(.prose:empty) { display: none; }
.rl-cite { color: var(--body-text-color-subdued); font-size: 12px; }
"""
# The page's own <head> style sheet (`launch(head=...)`: Gradio scopes `launch(css=...)` under its container, which
# breaks a media query's rule for the container itself). The samples beside the charts on a wide screen (a
# 1920x1080 projector), under them elsewhere, as before; the charts keep their height (app/charts.py), so all nine
# still fit under the transport bar.
HEAD = """<style>
#rl-view { gap: 12px; min-width: 0; }
#rl-view > * { min-width: 0 !important; }
@media (min-width: 1600px) {
  body .gradio-container { max-width: none !important; }
  #rl-view > #rl-view-charts { flex: 1 1 0 !important; }
  #rl-view > #rl-view-samples { flex: 0 0 clamp(420px, 28vw, 560px) !important; }
  #rl-samples-row { flex-direction: column; align-items: stretch !important; }
  #rl-samples-row > * { min-width: 0 !important; }
  #rl-view > #rl-view-samples { overflow-x: auto; }  /* presenter mode's larger samples scroll, not the page */
}
@media (max-width: 1599px) {
  #rl-view { flex-direction: column; align-items: stretch !important; }
  #rl-view > * { flex: 1 1 auto !important; width: 100%; }
}
/* a phone: the transport bar's eight buttons in two rows of four, each label on one line ("Room link" wrapped) */
@media (max-width: 700px) {
  #rl-transport { gap: 6px !important; }
  #rl-transport > * { flex: 1 1 22% !important; min-width: 0 !important; }
  #rl-transport button { min-width: 0 !important; padding: 6px 2px !important; font-size: 13px; white-space: nowrap; }
}
</style>"""
# Keyboard shortcuts, as a video player's: space starts, pauses or resumes; s steps; d toggles dark mode.
# Keys typed into a field are the field's. Run once by `launch(js=...)`.
SHORTCUTS_JS = """
() => {
  const busy = ['Running', 'Paused', 'Queued', 'Starting'];
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(t.tagName))) return;
    const click = (id) => { const b = document.getElementById(id); if (b) { e.preventDefault(); b.click(); } };
    if (e.key === ' ') {
      const pill = document.querySelector('#rl-status .rl-pill');
      click(pill && busy.includes(pill.textContent.trim()) ? 'rl-pause' : 'rl-start');
    } else if (e.key === 's') click('rl-step');
    else if (e.key === 'd') click('rl-dark');
  });
}
"""
HEADER_CSS = """
.rl-header { display: flex; gap: 12px; align-items: center; padding: 0 2px; }
.rl-logo { flex: 0 0 34px; width: 34px; height: 34px; border-radius: 10px; display: grid; place-items: center;
  font-size: 20px; color: white; background: linear-gradient(135deg, #2563eb, #ea580c); }
.rl-header > div:last-child { min-width: 0; }
.rl-header h1 { font-size: 20px; margin: 0; line-height: 1.2; }
.rl-header p { margin: 0; color: var(--body-text-color-subdued); font-size: 13px; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
@media (max-height: 820px) { .rl-header p { display: none; } }
"""
STATUS_CSS = """
.rl-status { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; font-size: 14px; padding: 2px 0; }
.rl-pill { font-weight: 600; font-size: 12px; padding: 2px 10px; border-radius: 10px; background: #e2e8f0;
  color: #334155; }
.rl-running { background: #dbeafe; color: #1d4ed8; } .rl-queued { background: #ede9fe; color: #6d28d9; }
.rl-paused { background: #fef3c7; color: #92400e; } .rl-done { background: #dcfce7; color: #166534; }
.rl-failed, .rl-interrupted { background: #fee2e2; color: #991b1b; }
.rl-run-name { margin-left: auto; color: var(--body-text-color-subdued); font-size: 12px; }
.rl-watch { font-size: 12px; color: #6d28d9; }
.rl-progress { flex-basis: 100%; height: 4px; background: var(--background-fill-secondary);
  border-radius: 2px; }
.rl-progress > div { height: 4px; background: linear-gradient(90deg, #2563eb, #ea580c); border-radius: 2px;
  transition: width 0.4s; }
.rl-live { font-size: 12px; color: #1d4ed8; }
"""
NOTES_CSS = """
.rl-problems { border: 1px solid #fca5a5; background: #fef2f2; color: #7f1d1d; border-radius: 8px;
  padding: 8px 12px; font-size: 13px; }
.rl-problems ul { margin: 4px 0 0 18px; padding: 0; }
.rl-advice { border: 1px solid #bfdbfe; background: #eff6ff; color: #1e3a8a; border-radius: 8px;
  padding: 6px 12px; font-size: 12.5px; margin-top: 4px; }
.rl-advice ul { margin: 2px 0 0 18px; padding: 0; }
.rl-diff { font-size: 12.5px; color: var(--body-text-color-subdued); display: flex; flex-wrap: wrap; gap: 4px;
  align-items: center; }
.rl-chip { background: #fff7ed; border: 1px solid #fed7aa; color: #9a3412; border-radius: 10px;
  padding: 0 8px; }
.rl-chip b { font-weight: 600; }
"""

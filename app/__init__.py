"""rlhf-lab's web UI (Gradio + Plotly). It reaches the model only through labcore and never imports torch.

`app.main.build_demo(manager)` builds the page; `app.cli.main` is the `rlhf-lab` console script.
"""

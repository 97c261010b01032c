"""The training assistant behind `POST /trainingassistent/`.

`facts` gathers what is known about a run (its config, episode rewards, metrics),
`curve` and `system` measure the reward curve and the training system, `hyper` checks
hyperparameters against documented ranges (`ranges`), `engine` turns all of it into
findings in three sections, `text` renders them as Markdown (English or Chinese), `llm`
relays an optional OpenAI-compatible model, and `view` streams the answer. What it
checks and why: docs/assistant.md.
"""

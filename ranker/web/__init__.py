"""The store in a browser: `ranker serve` (a local FastAPI app: archive, days, papers, search, thumbs up/down kept
as the user's labels) and `ranker site` (the same pages as static HTML).

Modules: views (what each page shows, from the store), render (Jinja2 templates, links), plots (inline SVG),
search (words / meaning / similar papers), security (Host, Origin, CSRF, headers), app (the FastAPI app),
server (uvicorn on a socket bound here), site (the static export). fastapi, uvicorn and jinja2 come with the
`web` extra and are imported only by the modules that need them.
"""

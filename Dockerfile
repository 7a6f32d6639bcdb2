# taskyard's image: `taskyard serve` by default; `taskyard worker`, `taskyard migrate` or any
# other command as the container's arguments. Built from this repository alone:
#   docker build -t taskyard .
# Agent CLIs (codex, claude) are not included unless named at build time, e.g.
#   docker build --build-arg AGENT_CLIS="@openai/codex@0.169.0 @anthropic-ai/claude-code@2.1.197" .
# No secret is baked in: webhook secrets, tokens and model keys come from the environment at
# run time (README.md, "Configuration").

# --- build: the package as a wheel, with the wheels of its dependencies ---------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY taskyard ./taskyard
RUN pip wheel --wheel-dir /wheels .

# --- run ---------------------------------------------------------------------------------------
FROM python:3.11-slim
ARG AGENT_CLIS=""
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TASKYARD_HOME=/var/lib/taskyard \
    TASKYARD_LOG_FORMAT=json

# git: workspaces are git worktrees of cached mirrors. tini: PID 1 that forwards signals and
# reaps what agents leave behind. bubblewrap: the agent sandbox (runs.sandbox: auto refuses to
# run agents without it; compose.yaml lets the container make the box's user namespace).
# Node.js only when agent CLIs are asked for.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends git tini ca-certificates bubblewrap; \
    if [ -n "$AGENT_CLIS" ]; then \
        apt-get install -y --no-install-recommends nodejs npm; \
        npm install --global --no-audit --no-fund $AGENT_CLIS; \
        npm cache clean --force; \
    fi; \
    rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /tmp/wheels
RUN pip install --no-index --find-links /tmp/wheels taskyard && rm -rf /tmp/wheels

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin taskyard \
    && mkdir -p "$TASKYARD_HOME" \
    && chown taskyard:taskyard "$TASKYARD_HOME"
USER taskyard
WORKDIR /home/taskyard
# SQLite database (when no TASKYARD_DATABASE_URL), executor ids, workspaces, task notes.
VOLUME ["/var/lib/taskyard"]

EXPOSE 8080
# For `serve` (GET /healthz answers while the process is up). `worker` and `migrate` listen on
# nothing: disable it for them (compose.yaml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["tini", "--", "taskyard"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

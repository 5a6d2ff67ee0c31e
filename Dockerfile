# The suite on the official Locust image, pinned to the Locust version of requirements.txt.
FROM locustio/locust:2.47.0
WORKDIR /home/locust/suite
COPY --chown=locust requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=locust . .
# The image's entrypoint is `locust`; compose passes the arguments.

"""LoadTestShape modules. A profile adds one with ``-f locustfile.py,shapes/<name>.py``; a plain
``locust -f locustfile.py`` run never picks one up."""

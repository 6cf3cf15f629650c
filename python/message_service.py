"""The message service: ``email|sms`` on every ``account-created`` event, publishing
``communication-sent``. Plain functions; klog.functions does the consuming, composing,
publishing, committing (after the output is acknowledged), retrying and dead-lettering.

    klog run message_service:app --broker kafka://127.0.0.1:9092 \
        --set bindings.emailsms-in-0.destination=account-created \
        --set bindings.emailsms-out-0.destination=communication-sent      # from python/
"""
from klog.functions import App

app = App("message-service")

BINDINGS = {
    "emailsms-in-0": {"destination": "account-created", "enable-dlq": True,
                      "back-off-initial-interval": 100},
    "emailsms-out-0": {"destination": "communication-sent"},
}
DEFINITION = "email|sms"


@app.function
def email(event: dict) -> dict:
    # a real service would call its mail provider here
    return {**event, "email_sent_to": event["email"]}


@app.function
def sms(event: dict) -> dict:
    return {**event, "sms_sent_to": event["phone"]}


def start(client, **kwargs):
    return app.start(client, definition=DEFINITION, bindings=BINDINGS, **kwargs)

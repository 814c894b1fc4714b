"""Ground truth for notifier/policy_test.go, computed by Zaqar itself.

Run with the Zaqar installed under /usr/lib/python3/dist-packages:

    /usr/bin/python3 notifier/testdata/zaqar_retry.py > notifier/testdata/zaqar_retry.json

"backoff" lists, for (minimum_delay, maximum_delay) pairs, the values of
each of Zaqar's back-off functions (zaqar.notification.tasks.webhook).
"schedules" runs WebhookTask._retry_post against a subscriber that always
fails, with time.sleep and the POST replaced by recorders, and lists the
pause before each retry (0 for the immediate ones).
"""
import json
import random
import time

from zaqar.common import consts
from zaqar.notification.tasks import webhook

STEP = consts.LINEAR_INTERVAL

pairs = [(5, 30), (1, 60), (2, 12), (10, 25), (3, 100), (7, 45), (10, 300),
         (1, 11), (15, 40), (4, 19), (30, 3600), (1, 1000), (9, 20), (6, 17)]
rnd = random.Random(20240601)
while len(pairs) < 150:
    lo = rnd.randint(1, 120)
    hi = lo + rnd.randint(10, 600)
    if (lo, hi) not in pairs:
        pairs.append((lo, hi))

backoff = []
for lo, hi in pairs:
    entry = {"minimum_delay": lo, "maximum_delay": hi}
    for name, fn in webhook.RETRY_BACKOFF_FUNCTION_MAP.items():
        entry[name] = [int(v) for v in fn(lo, hi, STEP)]
    backoff.append(entry)


def schedule(sub_policy, queue_policy):
    pauses, pending = [], [0]

    def sleep(s):
        pending[0] = s

    def post(self, subscriber, data, headers):
        pauses.append(pending[0])
        pending[0] = 0
        return False

    saved_sleep, saved_post = time.sleep, webhook.WebhookTask._post_request_success
    time.sleep, webhook.WebhookTask._post_request_success = sleep, post
    try:
        webhook.WebhookTask()._retry_post(sub_policy, queue_policy, "http://x", "{}", {})
    finally:
        time.sleep, webhook.WebhookTask._post_request_success = saved_sleep, saved_post
    return pauses


policies = [
    {},
    {"retry_backoff_function": "geometric"},
    {"retry_backoff_function": "exponential"},
    {"retry_backoff_function": "arithmetic"},
    {"retries_with_no_delay": 1, "minimum_delay_retries": 2, "minimum_delay": 2,
     "maximum_delay": 12, "maximum_delay_retries": 1, "retry_backoff_function": "linear"},
    {"retries_with_no_delay": 5, "minimum_delay_retries": 1, "minimum_delay": 1,
     "maximum_delay": 60, "maximum_delay_retries": 4, "retry_backoff_function": "arithmetic"},
    {"minimum_delay": 10, "maximum_delay": 100, "retry_backoff_function": "geometric"},
    {"maximum_delay": 45, "retry_backoff_function": "exponential"},
    {"minimum_delay": 3, "retries_with_no_delay": 2},
    {"maximum_delay_retries": 6, "minimum_delay_retries": 5},
    # Zero counts are valid (validation checks only truthy values) and
    # turn their phase off.
    {"retries_with_no_delay": 0},
    {"retries_with_no_delay": 0, "minimum_delay_retries": 0, "maximum_delay_retries": 0},
    {"minimum_delay_retries": 0, "retry_backoff_function": "geometric"},
    {"maximum_delay_retries": 0, "retry_backoff_function": "arithmetic"},
    {"minimum_delay": 0, "maximum_delay": 20},
    {"minimum_delay": 0, "maximum_delay": 20, "retry_backoff_function": "arithmetic"},
    # Python's booleans are integers, and pass validation as such.
    {"retries_with_no_delay": True, "maximum_delay_retries": False},
]
schedules = [{"policy": p, "pauses": schedule(p, {})} for p in policies]

# Subscription policy against queue policy (ignore_subscription_override).
sub = {"minimum_delay": 2, "maximum_delay": 12, "retries_with_no_delay": 1}
queue = {"minimum_delay": 7, "maximum_delay": 20, "maximum_delay_retries": 1}
overrides = []
for s, q in [(sub, {}), ({}, queue), (sub, queue),
             (dict(sub, ignore_subscription_override=True), queue),
             (sub, dict(queue, ignore_subscription_override=True)),
             (dict(sub, ignore_subscription_override=True), {}),
             ({"ignore_subscription_override": True}, queue),
             ({}, {})]:
    overrides.append({"subscription": s, "queue": q, "pauses": schedule(s, q)})

json.dump({"step": STEP,
           "defaults": {"retries_with_no_delay": consts.RETRIES_WITH_NO_DELAY,
                        "minimum_delay_retries": consts.MINIMUM_DELAY_RETRIES,
                        "minimum_delay": consts.MINIMUM_DELAY,
                        "maximum_delay": consts.MAXIMUM_DELAY,
                        "maximum_delay_retries": consts.MAXIMUM_DELAY_RETRIES},
           "backoff": backoff, "schedules": schedules,
           "overrides": overrides},
          __import__("sys").stdout, sort_keys=True)
print()

from celery.signals import worker_ready


@worker_ready.connect
def reap_runs_of_this_worker(sender=None, **kwargs):
    """A worker that (re)starts is running nothing: runs it owned before were lost."""
    from .services import run_reap_lost_on_worker_start

    hostname = getattr(sender, "hostname", "") or ""
    if hostname:
        run_reap_lost_on_worker_start(hostname=hostname)

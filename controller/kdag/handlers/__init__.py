"""The kopf handlers of kdag; importing this package registers them (the DAG webhook: kdag.webhook)."""

from kdag.handlers import dagruns, dags, pods

__all__ = ["dagruns", "dags", "pods"]

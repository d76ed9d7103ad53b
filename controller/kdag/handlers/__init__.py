"""The kopf handlers of kdag; importing this package registers them (and the DAG webhook)."""

from kdag import webhook
from kdag.handlers import dagruns, dags, pods

__all__ = ["dagruns", "dags", "pods", "webhook"]

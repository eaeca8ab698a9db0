"""Reprocessing at scale: a campaign of raw runs on Dask (LocalCluster, a scheduler, one worker per GPU).

See ``docs/performance.md`` ("Reprocessing on a cluster").
"""

from laue_live.parallel._campaign import CampaignResult, reprocess_campaign, reprocess_task
from laue_live.parallel._cluster import gpu_count, open_cluster

__all__ = ["CampaignResult", "gpu_count", "open_cluster", "reprocess_campaign", "reprocess_task"]

"""PACS integration over DICOMweb: the configured archives (config) and the one client that
talks to them (client: QIDO-RS, WADO-RS, STOW-RS through dicomweb-client). No FastAPI, no
Redis; use cases in `medseg.usecases.pacs` combine it with the store and the engine."""

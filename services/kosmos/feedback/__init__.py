"""The feedback service: what customers did, durable before it is acknowledged."""

from __future__ import annotations

import grpc

from kosmos.common.server import Service
from kosmos.feedback.domain import Feedback
from kosmos.feedback.servicer import FeedbackServicer
from kosmos.store import Store
from kosmos.v1 import feedback_service_pb2, feedback_service_pb2_grpc

SERVICE_NAME = feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name

__all__ = ["SERVICE_NAME", "Feedback", "services"]


def services(store: Store) -> list[Service]:
    servicer = FeedbackServicer(Feedback(store))

    def register(server: grpc.Server) -> None:
        feedback_service_pb2_grpc.add_FeedbackServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register)]

"""Adapter: the run summary email through SNS (the stack's NotificationTopic)."""

from __future__ import annotations

from typing import Any


class SnsNotifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self.sns = sns
        self.topic_arn = topic_arn

    def send(self, subject: str, text: str) -> None:
        # Subject: at most 100 characters (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html);
        # summary_message cuts it.
        self.sns.publish(TopicArn=self.topic_arn, Subject=subject, Message=text)

-- A brand reply finds its case through the customer message it answers (`in_reply_to`).
CREATE INDEX messages_platform_message ON messages (platform, platform_message_id);

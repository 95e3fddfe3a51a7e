include $(sort $(wildcard $(BR2_EXTERNAL_SIPSENSOR_PATH)/package/*/*.mk))

"""The shopper side's services: login tokens (auth), recommendations, carts and addresses."""

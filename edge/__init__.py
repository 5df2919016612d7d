"""What both HTTP edges share: DRF token headers, error bodies, exact JSON numbers."""

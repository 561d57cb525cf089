from django.urls import path

from . import views

app_name = "reviews"
urlpatterns = [
    path("", views.review_index, name="index"),
    path("graders/<str:pk>/", views.grader_reviews, name="grader"),
    path("graders/<str:pk>/report/", views.grader_report, name="report"),
    path("graders/<str:pk>/rescore/", views.grader_rescore, name="rescore"),
    path("graders/<str:pk>/add/", views.grader_add, name="add"),
    path("graders/<str:pk>/next/", views.review_next, name="next"),
    path("graders/<str:pk>/items/<int:item_pk>/", views.review_item, name="item"),
]
